declare module 'virtual:privacy-policy' {
  const text: string;
  export default text;
}
